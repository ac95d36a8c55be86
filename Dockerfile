FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt
COPY service ./service
COPY sql ./sql
# Unprivileged at run time; /data holds the development token secret when TOKEN_SECRET is unset.
RUN useradd --system --home /app app && mkdir /data && chown app /data
USER app
ENV HOST=0.0.0.0 PORT=2080 DATA_DIR=/data
EXPOSE 2080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:2080/health', timeout=2).status != 200)"
CMD ["python", "-m", "service", "run"]
