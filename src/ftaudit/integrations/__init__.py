"""ftaudit.integrations"""
