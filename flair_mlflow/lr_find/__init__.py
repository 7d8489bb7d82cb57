"""lr_find"""
