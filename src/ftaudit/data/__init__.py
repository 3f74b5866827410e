"""ftaudit.data"""
