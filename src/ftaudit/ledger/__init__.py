"""ftaudit.ledger"""
