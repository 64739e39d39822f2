from eopt.entry import main

main()
