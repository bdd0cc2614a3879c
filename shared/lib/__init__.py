"""Self-contained libraries: nothing in here imports the rest of the product."""
