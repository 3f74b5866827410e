"""ftaudit.reporting"""
