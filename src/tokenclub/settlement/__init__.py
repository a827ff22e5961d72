"""Profit-share settlement: periods, the pool, allocation to the won, payouts and statements."""
