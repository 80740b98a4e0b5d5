"""``python -m vex_llm``: the ``vex-llm`` command line (``python -m vex_llm demo`` for the demo)."""

from vex_llm.cli import main

# Guarded: `serve --workers N` starts workers with multiprocessing's spawn, which imports the
# parent's __main__ module in each worker.
if __name__ == "__main__":
    main()
