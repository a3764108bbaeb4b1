"""The web pages: HTML templates and static files, served without a build step."""
