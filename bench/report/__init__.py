"""Reading-side rendering: compare tables, recommendations, the HTML/markdown report, and the
regression gate's report.

Everything here reads loaded results and writes text; nothing imports a framework.
"""
