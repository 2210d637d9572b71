// The seeds' stack files as the seeds write them (seed 003: registry.yml,
// app.yml and haproxy.cfg; seed 004: the Portainer stack), with only these
// changes: image names (local stand-ins, test/helpers/stack-images.ts; the
// application image from the stack's own registry at 127.0.0.1:5000 instead
// of node01.dev.lan:5000) and host paths (a test folder instead of /docker/…
// and the machine's /var/lib/docker/volumes).
import { STACK_IMAGES } from './stack-images';

export const REGISTRY_PORT = 5000;
export const APP_PORT = 80;
export const PORTAINER_PORTS = [9000, 8000] as const;
export const appImage = (version: string): string => `127.0.0.1:${REGISTRY_PORT}/app:${version}`;

export const registryYml = (dataDir: string): string => `version: '3'

services:
  server:
    image: ${STACK_IMAGES.registry}
    ports:
      - ${REGISTRY_PORT}:5000
    volumes:
      - ${dataDir}:/var/lib/registry
    deploy:
      replicas: 1
      placement:
        constraints:
          - node.labels.registry == true
`;

export const appYml = (version: string, haproxyCfg: string, updateDelay = '15s', image = appImage(version)): string => `version: '3.4'

services:
  server:
    image: ${image}
    networks:
      - backend
    deploy:
      replicas: 3
      placement:
        constraints:
          - node.role == worker
      update_config:
        parallelism: 1
        delay: ${updateDelay}
        order: stop-first
  visualizer:
    image: ${STACK_IMAGES.visualizer}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
    networks:
      - visualizer
    deploy:
      replicas: 1
      placement:
        constraints:
          - node.role == manager
  proxy:
    image: ${STACK_IMAGES.haproxy}
    ports:
      - ${APP_PORT}:80
    volumes:
      - ${haproxyCfg}:/usr/local/etc/haproxy/haproxy.cfg
    networks:
      - frontend
      - backend
      - visualizer
    deploy:
      replicas: 1
      placement:
        constraints:
          - node.role == manager
    depends_on:
      - server
      - visualizer

networks:
  frontend:
    driver: overlay
  backend:
    driver: overlay
  visualizer:
    driver: overlay
`;

// Seed 003's haproxy.cfg, as written (the stack must be named `app`).
export const HAPROXY_CFG = `global
  log 127.0.0.1 local0
  log 127.0.0.1 local1 notice
  daemon

defaults
  log global
  mode http
  option httplog
  option dontlognull
  timeout connect 5000ms
  timeout client 50000ms
  timeout server 50000ms

frontend http_in
  bind *:80
  acl for_app path_sub -i hello-world
  use_backend app if for_app
  default_backend visualizer

backend app
  server app app_server:8080

backend visualizer
  server visualizer app_visualizer:8080
`;

export const portainerYml = (volumesDir: string): string => `version: '3.2'
services:
  agent:
    image: ${STACK_IMAGES.agent}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - ${volumesDir}:/var/lib/docker/volumes
    networks:
      - agent_network
    deploy:
      mode: global
      placement:
        constraints: [node.platform.os == linux]

  portainer:
    image: ${STACK_IMAGES.portainer}
    command: -H tcp://portainer_agent:9001 --tlsskipverify
    ports:
      - "9000:9000"
      - "8000:8000"
    volumes:
      - portainer_data:/data
    networks:
      - agent_network
    deploy:
      mode: replicated
      replicas: 1
      placement:
        constraints: [node.role == manager]

networks:
  agent_network:
    driver: overlay
    attachable: true

volumes:
  portainer_data:
`;
