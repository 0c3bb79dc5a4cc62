"""The worker (the only writer) and the parse step it runs ahead on threads."""
