"""Storage: the database engine and one repository per kind of record."""
