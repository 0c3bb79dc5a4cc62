"""Create the algoseek tables: one per dataset, the adjusted ones, the security master, data quality.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "algoseek__daily_ohlc",
        sa.Column("time_index", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asset_identifier", sa.String(length=255), nullable=False),
        sa.Column("secid", sa.BigInteger(), nullable=True),
        sa.Column("tradedate", sa.BigInteger(), nullable=True),
        sa.Column("ticker", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("primaryexchange", sa.Text(), nullable=True),
        sa.Column("isin", sa.Text(), nullable=True),
        sa.Column("open", sa.Float(), nullable=True),
        sa.Column("opensize", sa.BigInteger(), nullable=True),
        sa.Column("opentime", sa.Text(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("hightime", sa.Text(), nullable=True),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("lowtime", sa.Text(), nullable=True),
        sa.Column("close", sa.Float(), nullable=True),
        sa.Column("closesize", sa.BigInteger(), nullable=True),
        sa.Column("closetime", sa.Text(), nullable=True),
        sa.Column("listedmarkethoursvolume", sa.BigInteger(), nullable=True),
        sa.Column("listedmarkethourstrades", sa.BigInteger(), nullable=True),
        sa.Column("volume", sa.BigInteger(), nullable=True),
        sa.Column("listedtotaltrades", sa.BigInteger(), nullable=True),
        sa.Column("finramarkethoursvolume", sa.BigInteger(), nullable=True),
        sa.Column("finramarkethourstrades", sa.BigInteger(), nullable=True),
        sa.Column("finratotalvolume", sa.BigInteger(), nullable=True),
        sa.Column("finratotaltrades", sa.BigInteger(), nullable=True),
        sa.Column("vwap", sa.Float(), nullable=True),
        sa.Column("dailyvwap", sa.Float(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_index(
        "uix__algoseek__daily_ohlc__time_index__asset_identifier",
        "algoseek__daily_ohlc",
        ["time_index", "asset_identifier"],
        unique=True,
    )
    op.create_table(
        "algoseek__daily_ohlc_primary_adj",
        sa.Column("time_index", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asset_identifier", sa.String(length=255), nullable=False),
        sa.Column("secid", sa.BigInteger(), nullable=True),
        sa.Column("tradedate", sa.BigInteger(), nullable=True),
        sa.Column("ticker", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("primaryexchange", sa.Text(), nullable=True),
        sa.Column("isin", sa.Text(), nullable=True),
        sa.Column("open", sa.Float(), nullable=True),
        sa.Column("opensize", sa.BigInteger(), nullable=True),
        sa.Column("opentime", sa.Text(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("hightime", sa.Text(), nullable=True),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("lowtime", sa.Text(), nullable=True),
        sa.Column("close", sa.Float(), nullable=True),
        sa.Column("closesize", sa.BigInteger(), nullable=True),
        sa.Column("closetime", sa.Text(), nullable=True),
        sa.Column("listedmarkethoursvolume", sa.BigInteger(), nullable=True),
        sa.Column("listedmarkethourstrades", sa.BigInteger(), nullable=True),
        sa.Column("volume", sa.BigInteger(), nullable=True),
        sa.Column("listedtotaltrades", sa.BigInteger(), nullable=True),
        sa.Column("finramarkethoursvolume", sa.BigInteger(), nullable=True),
        sa.Column("finramarkethourstrades", sa.BigInteger(), nullable=True),
        sa.Column("finratotalvolume", sa.BigInteger(), nullable=True),
        sa.Column("finratotaltrades", sa.BigInteger(), nullable=True),
        sa.Column("cumulativepricefactor", sa.Float(), nullable=True),
        sa.Column("cumulativevolumefactor", sa.Float(), nullable=True),
        sa.Column("adjustmentfactor", sa.Float(), nullable=True),
        sa.Column("adjustmentreason", sa.Text(), nullable=True),
        sa.Column("vwap", sa.Float(), nullable=True),
        sa.Column("dailyvwap", sa.Float(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_index(
        "uix__algoseek__daily_ohlc_primary_adj__time_index__a_7b5f4f1bd3",
        "algoseek__daily_ohlc_primary_adj",
        ["time_index", "asset_identifier"],
        unique=True,
    )
    op.create_table(
        "algoseek__daily_ohlc_standard_adj",
        sa.Column("time_index", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asset_identifier", sa.String(length=255), nullable=False),
        sa.Column("secid", sa.BigInteger(), nullable=True),
        sa.Column("tradedate", sa.BigInteger(), nullable=True),
        sa.Column("ticker", sa.Text(), nullable=True),
        sa.Column("open", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("close", sa.Float(), nullable=True),
        sa.Column("volume", sa.BigInteger(), nullable=True),
        sa.Column("cumulativepricefactor", sa.Float(), nullable=True),
        sa.Column("cumulativevolumefactor", sa.Float(), nullable=True),
        sa.Column("adjustmentfactor", sa.Float(), nullable=True),
        sa.Column("adjustmentreason", sa.Text(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_index(
        "uix__algoseek__daily_ohlc_standard_adj__time_index_0e1c5f6331",
        "algoseek__daily_ohlc_standard_adj",
        ["time_index", "asset_identifier"],
        unique=True,
    )
    op.create_table(
        "algoseek__daily_ohlc_primary_adj_adjusted",
        sa.Column("time_index", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asset_identifier", sa.String(length=255), nullable=False),
        sa.Column("secid", sa.BigInteger(), nullable=True),
        sa.Column("tradedate", sa.BigInteger(), nullable=True),
        sa.Column("ticker", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("primaryexchange", sa.Text(), nullable=True),
        sa.Column("isin", sa.Text(), nullable=True),
        sa.Column("open", sa.Float(), nullable=True),
        sa.Column("opensize", sa.BigInteger(), nullable=True),
        sa.Column("opentime", sa.Text(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("hightime", sa.Text(), nullable=True),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("lowtime", sa.Text(), nullable=True),
        sa.Column("close", sa.Float(), nullable=True),
        sa.Column("closesize", sa.BigInteger(), nullable=True),
        sa.Column("closetime", sa.Text(), nullable=True),
        sa.Column("listedmarkethoursvolume", sa.BigInteger(), nullable=True),
        sa.Column("listedmarkethourstrades", sa.BigInteger(), nullable=True),
        sa.Column("volume", sa.Float(), nullable=True),
        sa.Column("listedtotaltrades", sa.BigInteger(), nullable=True),
        sa.Column("finramarkethoursvolume", sa.BigInteger(), nullable=True),
        sa.Column("finramarkethourstrades", sa.BigInteger(), nullable=True),
        sa.Column("finratotalvolume", sa.BigInteger(), nullable=True),
        sa.Column("finratotaltrades", sa.BigInteger(), nullable=True),
        sa.Column("cumulativepricefactor", sa.Float(), nullable=True),
        sa.Column("cumulativevolumefactor", sa.Float(), nullable=True),
        sa.Column("adjustmentfactor", sa.Float(), nullable=True),
        sa.Column("adjustmentreason", sa.Text(), nullable=True),
        sa.Column("vwap", sa.Float(), nullable=True),
        sa.Column("dailyvwap", sa.Float(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_index(
        "uix__algoseek__daily_ohlc_primary_adj_adjusted__time_fd65673965",
        "algoseek__daily_ohlc_primary_adj_adjusted",
        ["time_index", "asset_identifier"],
        unique=True,
    )
    op.create_table(
        "algoseek__daily_ohlc_standard_adj_adjusted",
        sa.Column("time_index", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asset_identifier", sa.String(length=255), nullable=False),
        sa.Column("secid", sa.BigInteger(), nullable=True),
        sa.Column("tradedate", sa.BigInteger(), nullable=True),
        sa.Column("ticker", sa.Text(), nullable=True),
        sa.Column("open", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("close", sa.Float(), nullable=True),
        sa.Column("volume", sa.Float(), nullable=True),
        sa.Column("cumulativepricefactor", sa.Float(), nullable=True),
        sa.Column("cumulativevolumefactor", sa.Float(), nullable=True),
        sa.Column("adjustmentfactor", sa.Float(), nullable=True),
        sa.Column("adjustmentreason", sa.Text(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_index(
        "uix__algoseek__daily_ohlc_standard_adj_adjusted__tim_8b7fed8f0b",
        "algoseek__daily_ohlc_standard_adj_adjusted",
        ["time_index", "asset_identifier"],
        unique=True,
    )
    op.create_table(
        "algoseek__security_master",
        sa.Column("time_index", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asset_identifier", sa.String(length=255), nullable=False),
        sa.Column("secid", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("latest_figi", sa.Text(), nullable=True),
        sa.Column("tickers", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("isin", sa.Text(), nullable=True),
        sa.Column("figi", sa.Text(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_index(
        "uix__algoseek__security_master__time_index__asset_identifier",
        "algoseek__security_master",
        ["time_index", "asset_identifier"],
        unique=True,
    )
    op.create_table(
        "algoseek__data_quality",
        sa.Column("time_index", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asset_identifier", sa.String(length=255), nullable=False),
        sa.Column("secid", sa.BigInteger(), nullable=True),
        sa.Column("open_findings", sa.BigInteger(), nullable=True),
        sa.Column("worst_severity", sa.Text(), nullable=True),
        sa.Column("kinds", sa.Text(), nullable=True),
        sa.Column("findings", sa.Text(), nullable=True),
    )
    op.create_index(
        "uix__algoseek__data_quality__time_index__asset_identifier",
        "algoseek__data_quality",
        ["time_index", "asset_identifier"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("algoseek__data_quality")
    op.drop_index(
        "uix__algoseek__data_quality__time_index__asset_identifier", table_name="algoseek__data_quality"
    )
    op.drop_table("algoseek__security_master")
    op.drop_index(
        "uix__algoseek__security_master__time_index__asset_identifier", table_name="algoseek__security_master"
    )
    op.drop_table("algoseek__daily_ohlc_standard_adj_adjusted")
    op.drop_index(
        "uix__algoseek__daily_ohlc_standard_adj_adjusted__tim_8b7fed8f0b",
        table_name="algoseek__daily_ohlc_standard_adj_adjusted",
    )
    op.drop_table("algoseek__daily_ohlc_primary_adj_adjusted")
    op.drop_index(
        "uix__algoseek__daily_ohlc_primary_adj_adjusted__time_fd65673965",
        table_name="algoseek__daily_ohlc_primary_adj_adjusted",
    )
    op.drop_table("algoseek__daily_ohlc_standard_adj")
    op.drop_index(
        "uix__algoseek__daily_ohlc_standard_adj__time_index_0e1c5f6331",
        table_name="algoseek__daily_ohlc_standard_adj",
    )
    op.drop_table("algoseek__daily_ohlc_primary_adj")
    op.drop_index(
        "uix__algoseek__daily_ohlc_primary_adj__time_index__a_7b5f4f1bd3",
        table_name="algoseek__daily_ohlc_primary_adj",
    )
    op.drop_table("algoseek__daily_ohlc")
    op.drop_index(
        "uix__algoseek__daily_ohlc__time_index__asset_identifier", table_name="algoseek__daily_ohlc"
    )
