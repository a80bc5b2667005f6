# Serves the app on a GPU machine or a Hugging Face Space (port 7860).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git libglib2.0-0 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV GRADIO_SERVER_NAME=0.0.0.0 PORT=7860
# with persistent storage on a Space, set CSE_JOBS_DIR=/data/jobs so jobs survive a rebuild
EXPOSE 7860
CMD ["python", "app.py"]
