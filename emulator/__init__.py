"""A local stand-in for the AWS services this project uses, on one loopback endpoint.

Development and test dependency only: nothing in dags/ or plugins/ imports it.
"""

DEFAULT_ACCOUNT_ID = "123456789012"
