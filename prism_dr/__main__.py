from prism_dr.app import main

main()
