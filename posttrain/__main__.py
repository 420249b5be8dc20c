"""`python -m posttrain ...` is the `posttrain` command (posttrain.cli)."""

from posttrain.cli import main

if __name__ == "__main__":
    main()
