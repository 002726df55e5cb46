"""Metric charts: the chart widget, plot rendering, downsampling."""
