"""The paths of the routes the front answers too (service/http/routes.py), declared once."""

SEARCH_PATH = "/api/v1/search-tweets"
POST_PATH = "/api/v1/tweet"
