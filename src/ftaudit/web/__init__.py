"""ftaudit.web"""
