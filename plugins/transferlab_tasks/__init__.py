"""Built-in tasks: scikit-learn digits, CSV text folders and image folders."""
