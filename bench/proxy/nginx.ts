/**
 * nginx as a plain reverse proxy: one worker (master_process off, so the process we start is
 * the one that serves and the one we stop), keep-alive to the upstream, no access log.
 * keepalive_requests is raised because nginx's default (1000) closes client and upstream
 * connections every thousand requests, which neither Node proxy does.
 */
export function nginxConfig(dir: string, port: number, upstreamUrl: string | string[]): string {
  // One upstream (bench/proxy) or several, round robin (bench/replicas).
  const servers = (Array.isArray(upstreamUrl) ? upstreamUrl : [upstreamUrl])
    .map((u) => `    server ${new URL(u).host};`)
    .join('\n');
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  upstream bench_upstream {
${servers}
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}
