from eopt.cli import main

main()
