from xpi_tools.emulator.cli import main

raise SystemExit(main())
