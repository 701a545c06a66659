"""Scaling-law fits (METHODS section 11) behind `lowres fit`.

    laws.py    the laws and their fits: LR annealing over a run's schedule, power laws over sizes,
               bootstrap confidence intervals (numpy/scipy only)
    curves.py  a run directory's loss curve with the learning rate of every update
    tables.py  numeric columns of a CSV table (a sweep's results.csv)
    report.py  fit.json, fit.md and the terminal tables
    plots.py   the PNG figures
"""
