"""``python -m vex_llm``: the demo until the command-line interface lands."""

from vex_llm.demo import main

main()
