import sys

from lsp_llm.cli import main

sys.exit(main())
