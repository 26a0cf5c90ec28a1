"""Reports from run and decode folders: the recipes' results tables and run summaries (results.py), and
PNG figures of training logs (plots.py)."""
