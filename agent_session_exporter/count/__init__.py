"""Counting: each cycle's plan (dedup, pending sessions, the window), the totals step, the sweep
schedule, and the per-source state they change."""
