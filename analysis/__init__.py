"""Reading finished runs and turning them into tables and figures (parse_test_res.py, end-of-run figures), and
what a training step costs (cost.py: passes, theta steps, FLOPs, saved activations)."""
