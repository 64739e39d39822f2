"""A local server that speaks the pricing providers' real wire formats over the bundled history."""
