DROP TABLE oauth_used_refresh;
DROP INDEX oauth_grants_user;
DROP INDEX oauth_grants_refresh;
DROP TABLE oauth_grants;
DROP TABLE oauth_codes;
DROP TABLE oauth_consents;
DROP TABLE oauth_clients;
