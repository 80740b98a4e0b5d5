"""``python -m vex_llm``: the ``vex-llm`` command line (``python -m vex_llm demo`` for the demo)."""

from vex_llm.cli import main

main()
