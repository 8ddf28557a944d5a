"""lite-debug: find out why a TFLite / LiteRT model refuses your data, and fix it."""
