from bertvault.cli import main

main()
