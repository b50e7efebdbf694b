from talklike.cli import main

raise SystemExit(main())
