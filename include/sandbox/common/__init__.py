"""Pieces every sandbox shares: simulated clock, fault injection, call counting, admin routes, server runner
and the demo company's data."""
