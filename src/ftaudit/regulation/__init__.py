"""ftaudit.regulation"""
