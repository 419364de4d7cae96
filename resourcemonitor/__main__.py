from resourcemonitor.cli import main

raise SystemExit(main())
