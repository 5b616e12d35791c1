"""``python -m retrace``: the product CLI, as the ``retrace`` console script runs it."""

from retrace.cli import main

if __name__ == "__main__":
    main()
