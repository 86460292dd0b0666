from llem.cli.main import main

raise SystemExit(main())
