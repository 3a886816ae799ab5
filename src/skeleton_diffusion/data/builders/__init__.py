"""data/builders"""
