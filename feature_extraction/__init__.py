"""feature_extraction"""
