"""ftaudit.pipeline"""
