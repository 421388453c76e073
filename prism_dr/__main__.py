from prism_dr.app import cli

cli()
