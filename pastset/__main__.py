from pastset.cli import main

raise SystemExit(main())
