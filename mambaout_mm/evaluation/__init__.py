"""Results and costs: the paper's tables, published peer costs, the Params/MACs counter and the
results report.
"""
