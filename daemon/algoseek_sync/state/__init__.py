"""The state database: its schema and migrations, the ledger of file versions, contained problems, the single-writer lock, SecId -> asset routes and master history."""
