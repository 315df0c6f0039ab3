"""``python -m tap_callcenter``: the same as the ``tap-callcenter`` command."""

from tap_callcenter.cli import main

if __name__ == "__main__":
    main()
