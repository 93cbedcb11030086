"""Reading-side rendering: compare tables, recommendations, and the HTML/markdown report.

Everything here reads loaded results and writes text; nothing imports a framework.
"""
