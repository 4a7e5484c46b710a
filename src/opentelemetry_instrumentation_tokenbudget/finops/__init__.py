"""Spend decisions computed from call records: forecasts, anomalies, repricing and advice (pure functions)."""
