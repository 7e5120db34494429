"""Reading finished runs and turning them into tables and figures (parse_test_res.py, end-of-run figures)."""
