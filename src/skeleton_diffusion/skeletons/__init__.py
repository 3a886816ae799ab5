"""skeletons"""
