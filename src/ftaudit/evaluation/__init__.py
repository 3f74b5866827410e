"""ftaudit.evaluation"""
