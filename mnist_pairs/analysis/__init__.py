"""The analysis of a results folder, one module per question (mnist_pairs.aggregate runs them):

collect   records -> runs, history and per-pair outcomes, grouped into cells by run identity
summary   per-cell counts and descriptive statistics
paired    every two cells, variants against their base, ranking, the report's findings
published the published numbers and the comparison with them (protocol-checked)
errors    where each cell errs (by digit pair, by d2 - d1)
stats     the tests (scipy, statsmodels wrappers)
figures   the PNGs; report: report.md
"""
