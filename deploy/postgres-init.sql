-- One database per institution's node (docker-compose consortium).
CREATE DATABASE regulator;
CREATE DATABASE "bank-a";
CREATE DATABASE "bank-b";
CREATE DATABASE insurer;
